// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// One row of a batch issuance. URIs are relative to the batch's baseURI:
/// full = bytes(uri).length == 0 ? "" : string.concat(baseURI, uri).
struct BatchCredential {
    address studentWallet;
    bytes32 fingerprint;
    string metadataURI;
    string encryptedPayloadURI;
    uint64 expiresAt;
}

/// The batch extension. Detect it with ERC-165:
/// supportsInterface(type(IBlockProofBatch).interfaceId).
interface IBlockProofBatch {
    function issueCredentialBatch(address institution, string calldata baseURI, BatchCredential[] calldata items)
        external
        returns (uint256[] memory ids);

    function revokeCredentialBatch(uint256[] calldata credentialIds, bytes32[] calldata reasonHashes) external;
}

/// The packed-calldata batch extension: issueCredentialBatch with the rows packed back to back instead of
/// ABI-encoded (about a quarter of the calldata). Detect it with ERC-165:
/// supportsInterface(type(IBlockProofPackedBatch).interfaceId).
/// One row: studentWallet (20 bytes) ‖ fingerprint (32) ‖ L (1 byte, 0..8) ‖ expiresAt (L bytes, big-endian)
///          ‖ uint16 length ‖ metadataURI suffix ‖ uint16 length ‖ encryptedPayloadURI suffix.
/// Same rules, events and result as issueCredentialBatch.
interface IBlockProofPackedBatch {
    function issueCredentialBatchPacked(address institution, string calldata baseURI, bytes calldata rows)
        external
        returns (uint256[] memory ids);
}

/// @title BlockProofCredentialVault
/// @notice The BlockProofCredentialVault interface (docs/contract.md) with a gas-lean layout: credentials
///         issued in batches live in the bytecode of data contracts ("blobs"), storage keeps only what
///         changes or is looked up. Batch issuance (ABI or packed rows), batch revocation, ERC-165.
/// @dev Storage and blob layout.
///      slot 0                 superAdmin | paused | credentialCount (uint32) | blobCount (uint32)
///      _entries[fingerprint]  id (32 bits) | prevIdOfStudent (32) | issuedAt (64) | revokedAt (64) |
///                             expiresAt (64): one slot per credential, single or batch; non-zero = used
///      _students[wallet]      lastId (32) | count (32): the head of the student's list (entries chain back)
///      _revocationReason[id]  the reason hash, only when revoked with a non-zero one
///      Credentials issued by issueCredential (and batch rows too large for any blob, and a batch of one
///      row without URIs, for which two slots cost less than a blob):
///        _records[id]         wallet (160) | id of the institution's plain record (32)
///        _fingerprintOf[id]   fingerprint
///        _uris[id]            uint32(len(meta)) ‖ meta ‖ payload, full URIs (absent when both empty)
///        _plainInstitution[r] the institution of plain record r (one per institution, made on first use)
///      Credentials issued in a batch: one blob per run of consecutive ids (a batch makes one blob per
///      24,576 bytes, EIP-170's code size limit; its init code is 10 bytes more, far below EIP-3860's),
///      created with CREATE, read with EXTCODECOPY, never changed:
///        blob                 0x00 (STOP: calling it does nothing) | institution (20 bytes) | firstId (4) |
///                             flags (1: bit 0 = has a URI area) | count (2) | baseLen (2) | baseURI |
///                             count × (wallet (20) | fingerprint (32)) |
///                             URI area, if any: count × (uint16 metaLen | uint16 payloadLen | meta | payload)
///                             The k-th blob (from 0) is the vault's CREATE with nonce k + 1: its address is
///                             computed, not stored.
///        _buckets[id / 224]   bit (id % 224) set when id is a blob's first id | (high 32 bits) how many blobs
///                             start before this bucket: an id's blob is one slot read away.
///      Derived, not stored: issued by a blob (no _records), revoked (revokedAt != 0), fingerprintUsed.
///      Gas does not depend on block.timestamp or on the block a transaction lands in. issueCredential's
///      gas does not depend on other issuances either (except the once-per-institution plain record):
///      web3's default estimate is always enough. A batch's gas depends on where its ids fall: exact for a
///      client that waits for each receipt; when other issuances land between estimate and inclusion, a
///      blob may find its start bucket new (+17,100) and cross one more bucket (+22,100): a pipelined
///      client keeps 39,200 gas of margin per blob.
contract BlockProofCredentialVault is IBlockProofBatch, IBlockProofPackedBatch {
    // ------------------------------------------------------------------ interface types
    struct IssueCredentialRequest {
        address institution;
        address studentWallet;
        bytes32 fingerprint;
        string metadataURI;
        string encryptedPayloadURI;
        uint64 expiresAt;
    }

    struct CredentialStatus {
        bool exists;
        bool valid;
        bool revoked;
        bytes32 fingerprint;
        address studentWallet;
        address institution;
        uint64 issuedAt;
        uint64 expiresAt;
        uint64 revokedAt;
    }

    struct Credential {
        uint256 id;
        address studentWallet;
        address institution;
        bytes32 fingerprint;
        string metadataURI;
        string encryptedPayloadURI;
        uint64 issuedAt;
        uint64 expiresAt;
        uint64 revokedAt;
        bytes32 revocationReasonHash;
        bool revoked;
    }

    struct Institution {
        string name;
        bool exists;
        bool isActive;
        uint64 createdAt;
        uint64 lastUpdatedAt;
    }

    // ------------------------------------------------------------------ errors
    error NotSuperAdmin();
    error NotRegistrar();
    error UnauthorizedController(address institution, address sender);
    error InstitutionNotFound(address institution);
    error InstitutionInactive(address institution);
    error InvalidInstitution();
    error InvalidFingerprint();
    error InvalidStudentWallet();
    error FingerprintAlreadyUsed(bytes32 fingerprint);
    error CredentialNotFound(uint256 credentialId);
    error CredentialRevokedAlready(uint256 credentialId);
    error InvalidSuperAdminCandidate();
    error ContractPaused();
    /// Extension: revokeCredentialBatch called with arrays of different lengths.
    error BatchLengthMismatch(uint256 credentialIds, uint256 reasonHashes);
    /// Extension: issueCredentialBatchPacked's rows do not parse; `offset` is where the bad row starts.
    error PackedRowsMalformed(uint256 offset);

    // ------------------------------------------------------------------ events
    event CredentialIssued(
        uint256 indexed credentialId,
        address indexed studentWallet,
        address indexed institution,
        bytes32 fingerprint,
        string metadataURI,
        string encryptedPayloadURI,
        uint64 expiresAt
    );
    event CredentialRevoked(uint256 indexed credentialId, address indexed revokedBy, bytes32 reasonHash, uint64 revokedAt);
    event SuperAdminUpdated(address indexed newAdmin);
    event RegistrarUpdated(address indexed registrar, bool allowed);
    event InstitutionUpserted(address indexed institution, string name, bool isActive, uint64 timestamp);
    event InstitutionControllerUpdated(address indexed institution, address indexed controller, bool allowed);
    event PausedStateChanged(bool isPaused, address indexed triggeredBy);

    // ------------------------------------------------------------------ storage
    // slot 0 (hot: read by every issue/revoke): superAdmin | paused | credential count
    address public superAdmin;
    bool public paused;
    uint32 private _credentialCount;
    uint32 private _blobCount;

    address public pendingSuperAdmin;
    mapping(address => bool) public registrars;

    /// Institution plus the id of its plain record (0 until its first slot-stored issuance).
    struct InstitutionState {
        string name;
        bool exists;
        bool isActive;
        uint64 createdAt;
        uint64 lastUpdatedAt;
        uint32 plainRecord;
    }

    mapping(address => InstitutionState) private _institutions;
    mapping(address => mapping(address => bool)) private _controllers;

    mapping(bytes32 => uint256) private _entries;
    mapping(address => uint256) private _students;
    mapping(uint256 => bytes32) private _revocationReason;
    mapping(uint256 => uint256) private _records;
    mapping(uint256 => bytes32) private _fingerprintOf;
    mapping(uint256 => bytes) private _uris;
    mapping(uint256 => address) private _plainInstitution;
    mapping(uint256 => uint256) private _buckets;

    bytes4 private constant _ERC165_ID = 0x01ffc9a7;
    uint256 private constant _U64 = 0xffffffffffffffff;
    uint256 private constant _U32 = 0xffffffff;

    // blob format (see the layout above)
    uint256 private constant _MAX_BLOB = 24_576;
    uint256 private constant _PREFIX = 10; // creation code that returns the blob: PUSH2 n DUP1 PUSH1 10 RETURNDATASIZE CODECOPY RETURNDATASIZE RETURN
    uint256 private constant _HEADER = 30;
    uint256 private constant _RECORD = 52;
    uint256 private constant _URI_LENGTHS = 4;
    uint256 private constant _BUCKET = 224;
    uint256 private constant _BUCKET_BITS = (1 << 224) - 1;

    constructor() {
        superAdmin = msg.sender;
        emit SuperAdminUpdated(msg.sender);
    }

    // ------------------------------------------------------------------ admin
    modifier onlySuperAdmin() {
        if (msg.sender != superAdmin) revert NotSuperAdmin();
        _;
    }

    function transferSuperAdmin(address newAdmin) external onlySuperAdmin {
        if (newAdmin == address(0)) revert InvalidSuperAdminCandidate();
        pendingSuperAdmin = newAdmin;
    }

    function acceptSuperAdmin() external {
        if (msg.sender != pendingSuperAdmin || msg.sender == address(0)) revert NotSuperAdmin();
        superAdmin = msg.sender;
        pendingSuperAdmin = address(0);
        emit SuperAdminUpdated(msg.sender);
    }

    function setRegistrar(address registrar, bool allowed) external onlySuperAdmin {
        registrars[registrar] = allowed;
        emit RegistrarUpdated(registrar, allowed);
    }

    function setPaused(bool value) external onlySuperAdmin {
        paused = value;
        emit PausedStateChanged(value, msg.sender);
    }

    function upsertInstitution(address institution, string calldata name, bool isActive) external {
        if (!registrars[msg.sender]) revert NotRegistrar();
        if (institution == address(0) || bytes(name).length == 0) revert InvalidInstitution();
        InstitutionState storage inst = _institutions[institution];
        uint64 nowTs = uint64(block.timestamp);
        if (!inst.exists) {
            inst.exists = true;
            inst.createdAt = nowTs;
        }
        inst.name = name;
        inst.isActive = isActive;
        inst.lastUpdatedAt = nowTs;
        emit InstitutionUpserted(institution, name, isActive, nowTs);
    }

    function setInstitutionController(address institution, address controller, bool allowed) external {
        if (msg.sender != superAdmin && !registrars[msg.sender] && msg.sender != institution) {
            revert UnauthorizedController(institution, msg.sender);
        }
        if (!_institutions[institution].exists) revert InstitutionNotFound(institution);
        if (controller == address(0)) revert UnauthorizedController(institution, controller);
        _controllers[institution][controller] = allowed;
        emit InstitutionControllerUpdated(institution, controller, allowed);
    }

    function canIssueForInstitution(address institution, address controller) public view returns (bool) {
        return controller == institution || _controllers[institution][controller];
    }

    function isController(address institution, address controller) external view returns (bool) {
        return _controllers[institution][controller];
    }

    // ------------------------------------------------------------------ issuance: shared
    function _checkIssuer(address institution) private view {
        if (paused) revert ContractPaused();
        if (!canIssueForInstitution(institution, msg.sender)) revert UnauthorizedController(institution, msg.sender);
        InstitutionState storage inst = _institutions[institution];
        if (!inst.exists) revert InstitutionNotFound(institution);
        if (!inst.isActive) revert InstitutionInactive(institution);
    }

    /// The fingerprint's entry and the student's list head, the two slots every credential writes; false
    /// (and nothing written) when the fingerprint is used already.
    function _enter(uint256 id, address wallet, bytes32 fingerprint, uint256 expiresAt) private returns (bool fresh) {
        mapping(address => uint256) storage students = _students;
        mapping(bytes32 => uint256) storage entries = _entries;
        assembly {
            mstore(0, fingerprint)
            mstore(0x20, entries.slot)
            let entrySlot := keccak256(0, 0x40)
            fresh := iszero(sload(entrySlot))
            if fresh {
                mstore(0, wallet)
                mstore(0x20, students.slot)
                let studentSlot := keccak256(0, 0x40)
                let student := sload(studentSlot)
                sstore(
                    entrySlot,
                    or(
                        or(id, shl(32, and(student, 0xffffffff))),
                        or(shl(64, and(timestamp(), 0xffffffffffffffff)), shl(192, expiresAt))
                    )
                )
                sstore(studentSlot, or(id, shl(32, add(shr(32, student), 1))))
            }
        }
    }

    /// The institution's plain record, created (keyed by `newId`) on its first use.
    function _plainRecord(address institution, uint256 newId) private returns (uint256 record) {
        InstitutionState storage inst = _institutions[institution];
        record = inst.plainRecord;
        if (record != 0) return record;
        record = newId;
        _plainInstitution[record] = institution;
        inst.plainRecord = uint32(record);
    }

    /// A credential kept in slots: its wallet, institution and fingerprint (the caller stores its URIs).
    function _storeInSlots(uint256 id, address institution, address wallet, bytes32 fingerprint) private {
        _records[id] = uint256(uint160(wallet)) | (_plainRecord(institution, id) << 160);
        _fingerprintOf[id] = fingerprint;
    }

    function _storeURIs(uint256 id, string calldata metadataURI, string calldata encryptedPayloadURI) private {
        if (bytes(metadataURI).length != 0 || bytes(encryptedPayloadURI).length != 0) {
            _uris[id] = abi.encodePacked(uint32(bytes(metadataURI).length), metadataURI, encryptedPayloadURI);
        }
    }

    // ------------------------------------------------------------------ issuance: single
    function issueCredential(IssueCredentialRequest calldata request) external returns (uint256 newCredentialId) {
        address institution = request.institution;
        _checkIssuer(institution);
        address wallet = request.studentWallet;
        if (wallet == address(0)) revert InvalidStudentWallet();
        bytes32 fingerprint = request.fingerprint;
        if (fingerprint == bytes32(0)) revert InvalidFingerprint();

        newCredentialId = uint256(_credentialCount) + 1;
        if (newCredentialId > type(uint32).max) revert(); // ids are stored as uint32
        uint64 expiresAt = request.expiresAt;
        if (!_enter(newCredentialId, wallet, fingerprint, expiresAt)) revert FingerprintAlreadyUsed(fingerprint);
        _storeInSlots(newCredentialId, institution, wallet, fingerprint);
        _storeURIs(newCredentialId, request.metadataURI, request.encryptedPayloadURI);
        _credentialCount = uint32(newCredentialId);
        emit CredentialIssued(
            newCredentialId, wallet, institution, fingerprint, request.metadataURI, request.encryptedPayloadURI, expiresAt
        );
    }

    // ------------------------------------------------------------------ issuance: batches
    /// One batch row, wherever it came from (URIs as calldata offset and length, relative to the base).
    struct Row {
        address wallet;
        bytes32 fingerprint;
        uint256 expiresAt;
        uint256 metaOffset;
        uint256 metaLength;
        uint256 payloadOffset;
        uint256 payloadLength;
        // the reader: ABI items (end 0: `source` is items.offset) or packed rows (`source` is the next row)
        uint256 source;
        uint256 end;
        uint256 begin;
    }

    /// The blob being built in memory: creation prefix and header at `start`, records from `records`
    /// (room for the rows left when it was laid out), URI entries from `uris`.
    struct Blob {
        address institution;
        uint256 baseOffset;
        uint256 baseLength;
        uint256 start;
        uint256 records;
        uint256 recordsEnd;
        uint256 uris;
        uint256 urisEnd;
        uint256 uriBytes; // URI characters in the blob: none, and its URI area is left out
        uint256 firstId; // 0 while the blob has no row
    }

    /// @inheritdoc IBlockProofBatch
    function issueCredentialBatch(address institution, string calldata baseURI, BatchCredential[] calldata items)
        external
        returns (uint256[] memory ids)
    {
        Row memory row;
        uint256 itemsOffset;
        assembly {
            itemsOffset := items.offset
        }
        row.source = itemsOffset;
        return _issueRows(institution, baseURI, row, items.length);
    }

    /// @inheritdoc IBlockProofPackedBatch
    function issueCredentialBatchPacked(address institution, string calldata baseURI, bytes calldata rows)
        external
        returns (uint256[] memory ids)
    {
        Row memory row;
        (row.source, row.end) = (_begin(rows), _end(rows));
        row.begin = row.source;
        uint256 n;
        for (; row.source != row.end; ++n) {
            _readPacked(row);
        }
        row.source = row.begin;
        return _issueRows(institution, baseURI, row, n);
    }

    function _begin(bytes calldata data) private pure returns (uint256 offset) {
        assembly {
            offset := data.offset
        }
    }

    function _end(bytes calldata data) private pure returns (uint256 offset) {
        assembly {
            offset := add(data.offset, data.length)
        }
    }

    /// Reads items[i] of an ABI-encoded BatchCredential[] with the checks Solidity's decoder makes (the
    /// tuple and both strings inside the calldata, no dirty bits in the address and the uint64).
    function _readItem(Row memory row, uint256 i) private pure {
        bool bad;
        uint256 itemsOffset = row.source;
        assembly {
            let item := add(itemsOffset, calldataload(add(itemsOffset, shl(5, i))))
            let wallet := calldataload(item)
            let expiresAt := calldataload(add(item, 0x80))
            let meta := add(item, calldataload(add(item, 0x40)))
            let metaLength := calldataload(meta)
            let payload := add(item, calldataload(add(item, 0x60)))
            let payloadLength := calldataload(payload)
            bad := or(or(shr(160, wallet), shr(64, expiresAt)), or(gt(add(item, 0xa0), calldatasize()), or(shr(32, metaLength), shr(32, payloadLength))))
            bad := or(bad, or(gt(add(add(meta, 0x20), metaLength), calldatasize()), gt(add(add(payload, 0x20), payloadLength), calldatasize())))
            mstore(row, wallet)
            mstore(add(row, 0x20), calldataload(add(item, 0x20)))
            mstore(add(row, 0x40), expiresAt)
            mstore(add(row, 0x60), add(meta, 0x20))
            mstore(add(row, 0x80), metaLength)
            mstore(add(row, 0xa0), add(payload, 0x20))
            mstore(add(row, 0xc0), payloadLength)
        }
        if (bad) revert();
    }

    /// Parses the packed row at row.source and moves row.source to the next one.
    function _readPacked(Row memory row) private pure {
        bool bad;
        uint256 cursor = row.source;
        uint256 end = row.end;
        assembly {
            let expiresLength := byte(0, calldataload(add(cursor, 52)))
            let p := add(cursor, 53)
            let expiresAt := 0
            if expiresLength { expiresAt := shr(sub(256, mul(8, expiresLength)), calldataload(p)) }
            p := add(p, expiresLength)
            let metaLength := shr(240, calldataload(p))
            let payloadAt := add(add(p, 2), metaLength)
            let payloadLength := shr(240, calldataload(payloadAt))
            let next := add(add(payloadAt, 2), payloadLength)
            bad := or(gt(expiresLength, 8), gt(next, end))
            mstore(add(row, 0xe0), next)
            mstore(row, shr(96, calldataload(cursor)))
            mstore(add(row, 0x20), calldataload(add(cursor, 20)))
            mstore(add(row, 0x40), expiresAt)
            mstore(add(row, 0x60), add(p, 2))
            mstore(add(row, 0x80), metaLength)
            mstore(add(row, 0xa0), add(payloadAt, 2))
            mstore(add(row, 0xc0), payloadLength)
        }
        if (bad) revert PackedRowsMalformed(cursor - row.begin);
    }

    function _issueRows(address institution, string calldata baseURI, Row memory row, uint256 n)
        private
        returns (uint256[] memory ids)
    {
        _checkIssuer(institution);
        if (n == 1 && _rowHasNoURIs(row)) return _issueLoneRow(institution, row);
        ids = new uint256[](n);
        Blob memory blob;
        blob.institution = institution;
        (blob.baseOffset, blob.baseLength) = _slice(baseURI);
        _startBlob(blob, n);
        uint256 count = _credentialCount;
        bool packed = row.end != 0;
        for (uint256 i; i < n; ++i) {
            if (packed) _readPacked(row);
            else _readItem(row, i);
            if (row.wallet == address(0)) revert InvalidStudentWallet();
            if (row.fingerprint == bytes32(0)) revert InvalidFingerprint();
            uint256 id;
            unchecked {
                id = count + 1;
            }
            if (!_enter(id, row.wallet, row.fingerprint, row.expiresAt)) continue; // already issued: skipped, id 0
            count = id;
            assembly {
                mstore(add(ids, shl(5, add(i, 1))), id)
            }
            _place(blob, row, id, n - i);
            _emitIssued(blob, row, id);
        }
        _finishBlob(blob, 0);
        if (count > type(uint32).max) revert(); // ids are stored as uint32
        _credentialCount = uint32(count);
    }

    /// A batch of one row without URIs: kept in slots, as issueCredential keeps it (cheaper than a blob).
    function _issueLoneRow(address institution, Row memory row) private returns (uint256[] memory ids) {
        ids = new uint256[](1);
        if (row.wallet == address(0)) revert InvalidStudentWallet();
        if (row.fingerprint == bytes32(0)) revert InvalidFingerprint();
        uint256 id = uint256(_credentialCount) + 1;
        if (id > type(uint32).max) revert(); // ids are stored as uint32
        if (!_enter(id, row.wallet, row.fingerprint, row.expiresAt)) return ids; // already issued: skipped, id 0
        _storeInSlots(id, institution, row.wallet, row.fingerprint);
        _credentialCount = uint32(id);
        ids[0] = id;
        emit CredentialIssued(id, row.wallet, institution, row.fingerprint, "", "", uint64(row.expiresAt));
    }

    /// Reads the first row (the reader stays where it was).
    function _rowHasNoURIs(Row memory row) private pure returns (bool) {
        uint256 source = row.source;
        if (row.end != 0) _readPacked(row);
        else _readItem(row, 0);
        row.source = source;
        return row.metaLength == 0 && row.payloadLength == 0;
    }

    function _slice(string calldata s) private pure returns (uint256 offset, uint256 length) {
        assembly {
            offset := s.offset
            length := s.length
        }
    }

    /// Lays out an empty blob at the free memory pointer: prefix, header, base, then room for `rowsLeft`.
    function _startBlob(Blob memory blob, uint256 rowsLeft) private pure {
        uint256 start;
        assembly {
            start := mload(0x40)
        }
        blob.start = start;
        uint256 records = start + _PREFIX + _HEADER + blob.baseLength;
        blob.records = records;
        uint256 baseOffset = blob.baseOffset;
        uint256 baseLength = blob.baseLength;
        assembly {
            calldatacopy(sub(records, baseLength), baseOffset, baseLength)
        }
        _layOut(blob, rowsLeft);
    }

    function _layOut(Blob memory blob, uint256 rowsLeft) private pure {
        uint256 used = _HEADER + blob.baseLength;
        uint256 room = used + _RECORD + _URI_LENGTHS <= _MAX_BLOB ? (_MAX_BLOB - used) / _RECORD : 0;
        if (rowsLeft < room) room = rowsLeft;
        blob.recordsEnd = blob.records;
        blob.uris = blob.records + room * _RECORD;
        blob.urisEnd = blob.uris;
        blob.uriBytes = 0;
        blob.firstId = 0;
    }

    /// Appends the row to the blob, first creating the blob so far when the row does not fit; a row too
    /// large for any blob is kept in slots.
    function _place(Blob memory blob, Row memory row, uint256 id, uint256 rowsLeft) private {
        unchecked { // lengths are below 2**32 (checked by the readers)
            uint256 size = _RECORD + _URI_LENGTHS + row.metaLength + row.payloadLength;
            uint256 recordsEnd = blob.recordsEnd;
            uint256 uris = blob.uris;
            if (recordsEnd == uris || recordsEnd - blob.start - _PREFIX + blob.urisEnd - uris + size > _MAX_BLOB) {
                _finishBlob(blob, rowsLeft);
                if (_HEADER + blob.baseLength + size > _MAX_BLOB) {
                    _storeRowInSlots(blob, row, id);
                    return;
                }
            }
            if (blob.firstId == 0) blob.firstId = id;
        }
        assembly {
            // Blob: recordsEnd 0xa0, urisEnd 0xe0, uriBytes 0x100. Row: wallet 0x00, fingerprint 0x20,
            // metaOffset 0x60, metaLength 0x80, payloadOffset 0xa0, payloadLength 0xc0.
            let r := mload(add(blob, 0xa0))
            mstore(r, shl(96, mload(row)))
            mstore(add(r, 20), mload(add(row, 0x20)))
            mstore(add(blob, 0xa0), add(r, 52))
            let u := mload(add(blob, 0xe0))
            let metaLength := mload(add(row, 0x80))
            let payloadLength := mload(add(row, 0xc0))
            mstore(u, shl(224, or(shl(16, metaLength), payloadLength)))
            u := add(u, 4)
            calldatacopy(u, mload(add(row, 0x60)), metaLength)
            u := add(u, metaLength)
            calldatacopy(u, mload(add(row, 0xa0)), payloadLength)
            mstore(add(blob, 0xe0), add(u, payloadLength))
            mstore(add(blob, 0x100), add(mload(add(blob, 0x100)), add(metaLength, payloadLength)))
        }
    }

    function _storeRowInSlots(Blob memory blob, Row memory row, uint256 id) private {
        uint256 freeMemory;
        uint256 scratch = blob.records; // the blob so far is created: its memory is free
        assembly {
            freeMemory := mload(0x40)
            mstore(0x40, scratch)
        }
        string memory meta = _fullURI(blob, row.metaOffset, row.metaLength);
        string memory payload = _fullURI(blob, row.payloadOffset, row.payloadLength);
        _storeInSlots(id, blob.institution, row.wallet, row.fingerprint);
        if (bytes(meta).length != 0 || bytes(payload).length != 0) {
            _uris[id] = abi.encodePacked(uint32(bytes(meta).length), meta, payload);
        }
        assembly {
            mstore(0x40, freeMemory)
        }
    }

    function _fullURI(Blob memory blob, uint256 offset, uint256 length) private pure returns (string memory uri) {
        if (length == 0) return "";
        uint256 baseOffset = blob.baseOffset;
        uint256 baseLength = blob.baseLength;
        uri = new string(baseLength + length);
        assembly {
            calldatacopy(add(uri, 0x20), baseOffset, baseLength)
            calldatacopy(add(add(uri, 0x20), baseLength), offset, length)
        }
    }

    /// Creates the blob built so far (if it has rows) and lays out the next one for `rowsLeft` rows.
    function _finishBlob(Blob memory blob, uint256 rowsLeft) private {
        uint256 firstId = blob.firstId;
        if (firstId != 0) {
            uint256 count = (blob.recordsEnd - blob.records) / _RECORD;
            uint256 end = blob.recordsEnd;
            uint256 flags;
            if (blob.uriBytes != 0) {
                flags = 1;
                uint256 from = blob.uris;
                uint256 length = blob.urisEnd - from;
                assembly {
                    mcopy(end, from, length)
                }
                end += length;
            }
            uint256 start = blob.start;
            uint256 size = end - start - _PREFIX;
            uint256 header = (0x3df3 << 240) | (uint256(uint160(blob.institution)) << 72) | (firstId << 40)
                | (flags << 32) | (count << 16) | blob.baseLength;
            uint256 ordinal = _blobCount;
            address data;
            assembly {
                mstore(start, or(shl(248, 0x61), or(shl(232, size), shl(192, 0x80600a3d39))))
                mstore(add(start, 8), header)
                data := create(0, start, add(size, _PREFIX))
            }
            if (data == address(0) || data != _created(ordinal + 1)) revert(); // out of gas
            _blobCount = uint32(ordinal + 1);
            uint256 bucket = firstId / _BUCKET;
            uint256 word = _buckets[bucket];
            if (word == 0) word = ordinal << 224; // no blob started in this bucket yet
            _buckets[bucket] = word | (1 << (firstId % _BUCKET));
            uint256 lastBucket = (firstId + count - 1) / _BUCKET;
            for (uint256 b = bucket + 1; b <= lastBucket; ++b) {
                _buckets[b] = (ordinal + 1) << 224;
            }
        }
        if (rowsLeft != 0) _layOut(blob, rowsLeft);
    }

    /// CredentialIssued for a batch row, its URIs made full (base ‖ suffix, or "" when the suffix is empty).
    function _emitIssued(Blob memory blob, Row memory row, uint256 id) private {
        bytes32 topic = CredentialIssued.selector;
        uint256 out = blob.urisEnd; // past everything the blob holds
        address institution = blob.institution;
        uint256 baseOffset = blob.baseOffset;
        uint256 baseLength = blob.baseLength;
        address wallet = row.wallet;
        uint256 p;
        assembly {
            mstore(out, mload(add(row, 0x20)))
            mstore(add(out, 0x60), mload(add(row, 0x40)))
            mstore(add(out, 0x20), 0x80)
            p := add(out, 0x80)
            for { let field := 0x60 } lt(field, 0xe0) { field := add(field, 0x40) } {
                let length := mload(add(row, add(field, 0x20)))
                let full := 0
                if length { full := add(baseLength, length) }
                mstore(p, full)
                let words := shl(5, shr(5, add(full, 31)))
                if full {
                    mstore(add(p, words), 0) // zero the last word's padding
                    calldatacopy(add(p, 0x20), baseOffset, baseLength)
                    calldatacopy(add(add(p, 0x20), baseLength), mload(add(row, field)), length)
                }
                p := add(add(p, 0x20), words)
                if eq(field, 0x60) { mstore(add(out, 0x40), sub(p, out)) }
            }
            log4(out, sub(p, out), topic, id, wallet, institution)
        }
    }

    // ------------------------------------------------------------------ revocation
    /// Revokes `id`; returns false (without effects) when it is already revoked.
    function _revoke(uint256 id, bytes32 reasonHash) private returns (bool) {
        (bool exists,, address institution, bytes32 fingerprint,,) = _find(id);
        if (!exists) revert CredentialNotFound(id);
        if (!canIssueForInstitution(institution, msg.sender)) revert UnauthorizedController(institution, msg.sender);
        uint256 entry;
        mapping(bytes32 => uint256) storage entries = _entries;
        uint256 entrySlot;
        assembly {
            mstore(0, fingerprint)
            mstore(0x20, entries.slot)
            entrySlot := keccak256(0, 0x40)
            entry := sload(entrySlot)
        }
        if ((entry >> 128) & _U64 != 0) return false;
        uint64 nowTs = uint64(block.timestamp);
        assembly {
            sstore(entrySlot, or(entry, shl(128, nowTs)))
        }
        if (reasonHash != bytes32(0)) _revocationReason[id] = reasonHash;
        emit CredentialRevoked(id, msg.sender, reasonHash, nowTs);
        return true;
    }

    function revokeCredential(uint256 credentialId, bytes32 reasonHash) external {
        if (paused) revert ContractPaused();
        if (!_revoke(credentialId, reasonHash)) revert CredentialRevokedAlready(credentialId);
    }

    /// @inheritdoc IBlockProofBatch
    function revokeCredentialBatch(uint256[] calldata credentialIds, bytes32[] calldata reasonHashes) external {
        if (paused) revert ContractPaused();
        uint256 n = credentialIds.length;
        if (n != reasonHashes.length) revert BatchLengthMismatch(n, reasonHashes.length);
        for (uint256 i; i < n; ++i) {
            _revoke(credentialIds[i], reasonHashes[i]); // already revoked: skipped
        }
    }

    // ------------------------------------------------------------------ lookup
    /// Where a credential is and what never changes about it (blob 0: kept in slots).
    function _find(uint256 id)
        private
        view
        returns (bool exists, address wallet, address institution, bytes32 fingerprint, address blob, uint256 index)
    {
        uint256 record = _records[id];
        if (record != 0) {
            return (true, address(uint160(record)), _plainInstitution[record >> 160], _fingerprintOf[id], address(0), 0);
        }
        if (id == 0 || id > _credentialCount) return (false, address(0), address(0), bytes32(0), address(0), 0);
        blob = _blobOf(id);
        assembly {
            // scratch space only (52 bytes < 0x40)
            extcodecopy(blob, 0, 1, 32) // institution | firstId | flags | count | baseLength | ...
            let header := mload(0)
            institution := shr(96, header)
            index := sub(id, and(shr(64, header), 0xffffffff))
            let baseLength := and(shr(24, header), 0xffff)
            extcodecopy(blob, 0, add(add(30, baseLength), mul(52, index)), 52)
            wallet := shr(96, mload(0))
            fingerprint := mload(20)
        }
        exists = true;
    }

    /// The blob holding batch-issued `id`: one bucket read, its CREATE address computed.
    function _blobOf(uint256 id) private view returns (address) {
        uint256 word = _buckets[id / _BUCKET];
        uint256 starts = word & ((2 << (id % _BUCKET)) - 1);
        return _created((word >> 224) + _popCount(starts)); // ordinal + 1 = its nonce
    }

    /// The address of this contract's CREATE with `nonce` (keccak256(rlp([this, nonce]))).
    function _created(uint256 nonce) private view returns (address created) {
        assembly {
            switch lt(nonce, 0x80)
            case 1 {
                mstore(0, address())
                mstore8(0x0b, 0x94)
                mstore8(0x0a, 0xd6)
                mstore8(0x20, nonce)
                created := keccak256(0x0a, 0x17)
            }
            default {
                let n := 1
                for {} shr(shl(3, n), nonce) { n := add(n, 1) } {}
                mstore(n, nonce)
                mstore(0, shl(8, address()))
                mstore8(0x1f, add(0x80, n))
                mstore8(0x0a, 0x94)
                mstore8(0x09, add(0xd6, n))
                created := keccak256(0x09, add(0x17, n))
            }
            created := and(created, 0xffffffffffffffffffffffffffffffffffffffff)
        }
    }

    function _popCount(uint256 x) private pure returns (uint256 c) {
        assembly {
            let max := not(0)
            x := sub(x, and(shr(1, x), div(max, 3)))
            x := add(and(x, div(max, 5)), and(shr(2, x), div(max, 5)))
            x := and(add(x, shr(4, x)), div(max, 17))
            c := shr(248, mul(x, div(max, 255))) // x < 2**224: never all ones
        }
    }

    // ------------------------------------------------------------------ views
    function credentialCount() external view returns (uint256) {
        return _credentialCount;
    }

    function fingerprintUsed(bytes32 fingerprint) external view returns (bool) {
        return _entries[fingerprint] != 0;
    }

    function _status(bool exists, address wallet, address institution, bytes32 fingerprint)
        private
        view
        returns (CredentialStatus memory status)
    {
        if (!exists) return status;
        uint256 entry = _entries[fingerprint];
        uint64 expiresAt = uint64(entry >> 192);
        uint64 revokedAt = uint64(entry >> 128);
        status.exists = true;
        status.revoked = revokedAt != 0;
        status.valid = !status.revoked && !(expiresAt != 0 && expiresAt < block.timestamp);
        status.fingerprint = fingerprint;
        status.studentWallet = wallet;
        status.institution = institution;
        status.issuedAt = uint64(entry >> 64);
        status.expiresAt = expiresAt;
        status.revokedAt = revokedAt;
    }

    function credentialStatus(uint256 id) public view returns (CredentialStatus memory) {
        (bool exists, address wallet, address institution, bytes32 fingerprint,,) = _find(id);
        return _status(exists, wallet, institution, fingerprint);
    }

    function verifyFingerprint(uint256 id, bytes32 fingerprint) external view returns (bool) {
        CredentialStatus memory s = credentialStatus(id);
        return s.exists && s.fingerprint == fingerprint && s.valid;
    }

    function getCredential(uint256 id) external view returns (Credential memory c) {
        (bool exists, address wallet, address institution, bytes32 fingerprint, address blob, uint256 index) = _find(id);
        if (!exists) revert CredentialNotFound(id);
        CredentialStatus memory s = _status(exists, wallet, institution, fingerprint);
        c.id = id;
        c.studentWallet = s.studentWallet;
        c.institution = s.institution;
        c.fingerprint = s.fingerprint;
        c.issuedAt = s.issuedAt;
        c.expiresAt = s.expiresAt;
        c.revokedAt = s.revokedAt;
        c.revoked = s.revoked;
        c.revocationReasonHash = _revocationReason[id];
        if (blob == address(0)) {
            bytes memory packed = _uris[id];
            if (packed.length != 0) {
                uint256 metaLength = uint32(bytes4(packed));
                c.metadataURI = string(_copy(packed, 4, metaLength));
                c.encryptedPayloadURI = string(_copy(packed, 4 + metaLength, packed.length - 4 - metaLength));
            }
        } else {
            (c.metadataURI, c.encryptedPayloadURI) = _blobURIs(blob, index);
        }
    }

    /// The full URIs of row `index` of `blob`: a walk through its URI area, read whole.
    function _blobURIs(address blob, uint256 index) private view returns (string memory meta, string memory payload) {
        bytes memory head = new bytes(32);
        assembly {
            extcodecopy(blob, add(head, 0x20), 1, 32)
        }
        uint256 header = uint256(bytes32(head));
        if ((header >> 56) & 1 == 0) return ("", ""); // no URI area
        uint256 count = (header >> 40) & 0xffff;
        uint256 baseLength = (header >> 24) & 0xffff;
        uint256 area = _HEADER + baseLength + count * _RECORD;
        bytes memory code = new bytes(blob.code.length);
        assembly {
            extcodecopy(blob, add(code, 0x20), 0, mload(code))
        }
        uint256 pos = area;
        for (uint256 i; i < index; ++i) {
            pos += _URI_LENGTHS + _u16(code, pos) + _u16(code, pos + 2);
        }
        uint256 metaLength = _u16(code, pos);
        uint256 payloadLength = _u16(code, pos + 2);
        bytes memory base = _copy(code, _HEADER, baseLength);
        if (metaLength != 0) meta = string.concat(string(base), string(_copy(code, pos + 4, metaLength)));
        if (payloadLength != 0) {
            payload = string.concat(string(base), string(_copy(code, pos + 4 + metaLength, payloadLength)));
        }
    }

    function _u16(bytes memory data, uint256 pos) private pure returns (uint256 value) {
        assembly {
            value := shr(240, mload(add(add(data, 0x20), pos)))
        }
    }

    function _copy(bytes memory data, uint256 start, uint256 length) private pure returns (bytes memory out) {
        out = new bytes(length);
        assembly {
            mcopy(add(out, 0x20), add(add(data, 0x20), start), length)
        }
    }

    function getInstitution(address institution) external view returns (Institution memory) {
        InstitutionState storage s = _institutions[institution];
        return Institution(s.name, s.exists, s.isActive, s.createdAt, s.lastUpdatedAt);
    }

    function studentCredentialIds(address studentWallet) external view returns (uint256[] memory ids) {
        uint256 student = _students[studentWallet];
        uint256 count = student >> 32;
        ids = new uint256[](count);
        uint256 id = student & _U32;
        for (uint256 i = count; i > 0; --i) {
            ids[i - 1] = id;
            (,,, bytes32 fingerprint,,) = _find(id);
            id = (_entries[fingerprint] >> 32) & _U32;
        }
    }

    // ------------------------------------------------------------------ ERC-165
    function supportsInterface(bytes4 interfaceId) external view returns (bool) {
        return interfaceId == _ERC165_ID || interfaceId == type(IBlockProofBatch).interfaceId
            || interfaceId == type(IBlockProofPackedBatch).interfaceId;
    }
}
