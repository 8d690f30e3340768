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

/// @title BlockProofCredentialVaultV1
/// @notice The vault as it was before the blob layout (issue 17): every credential in storage slots.
///         Kept, unchanged but for its name, so bench/gas.py measures it beside the current vault.
/// @dev Storage layout per credential (batch with a shared base URI, short suffixes):
///        _records[id]        wallet | expiresAt | batchId          (1 slot)
///        _fingerprintOf[id]  fingerprint                           (1 slot)
///        _byFingerprint[fp]  id | prevIdOfStudent | issuedAt | revokedAt  (1 slot)
///        _students[wallet]   lastId | count                        (1 slot, shared by a student's credentials)
///        _uris[id]           uint32(len(meta)) ++ meta ++ payload  (1 slot while <= 31 bytes, absent when both empty)
///      Derived, not stored per credential: institution (from the batch record),
///      revoked (revokedAt != 0), fingerprintUsed (an id exists for it).
///      A batch record (institution | hasBase) and its baseURI are stored once per batch, keyed by
///      the batch's first credential id. Every base-less issuance of an institution (its singles and
///      its batches without baseURI) shares one record, created by the first of them.
///      Gas never depends on block.timestamp or on which block a transaction lands in: an estimate
///      is exact for a client that waits for each receipt, and an upper bound otherwise (the only
///      state-dependent step, creating that shared record, happens once per institution).
contract BlockProofCredentialVaultV1 is IBlockProofBatch {
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

    address public pendingSuperAdmin;
    mapping(address => bool) public registrars;

    /// Institution plus the id of its shared base-less batch record (0 until its first such issuance).
    struct InstitutionState {
        string name;
        bool exists;
        bool isActive;
        uint64 createdAt;
        uint64 lastUpdatedAt;
        uint32 plainBatch;
    }

    mapping(address => InstitutionState) private _institutions;
    mapping(address => mapping(address => bool)) private _controllers;

    struct Record {
        address studentWallet;
        uint64 expiresAt;
        uint32 batchId;
    }

    struct FingerprintEntry {
        uint32 id;
        uint32 prevIdOfStudent;
        uint64 issuedAt;
        uint64 revokedAt;
    }

    struct StudentIndex {
        uint32 lastId;
        uint32 count;
    }

    struct BatchRecord {
        address institution;
        bool hasBase;
    }

    mapping(uint256 => Record) private _records;
    mapping(uint256 => bytes32) private _fingerprintOf;
    mapping(bytes32 => FingerprintEntry) private _byFingerprint;
    mapping(address => StudentIndex) private _students;
    mapping(uint256 => bytes) private _uris;
    mapping(uint256 => bytes32) private _revocationReason;
    mapping(uint256 => BatchRecord) private _batches;
    mapping(uint256 => string) private _batchBase;

    bytes4 private constant _ERC165_ID = 0x01ffc9a7;

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

    // ------------------------------------------------------------------ issuance
    function _checkIssuer(address institution) private view {
        if (paused) revert ContractPaused();
        if (!canIssueForInstitution(institution, msg.sender)) revert UnauthorizedController(institution, msg.sender);
        InstitutionState storage inst = _institutions[institution];
        if (!inst.exists) revert InstitutionNotFound(institution);
        if (!inst.isActive) revert InstitutionInactive(institution);
    }

    /// The institution's shared base-less batch record, created (keyed by `newId`) on its first use.
    function _plainBatch(address institution, uint256 newId) private returns (uint256 batchId) {
        InstitutionState storage inst = _institutions[institution];
        batchId = inst.plainBatch;
        if (batchId != 0) return batchId;
        batchId = newId;
        _batches[batchId] = BatchRecord(institution, false);
        inst.plainBatch = uint32(batchId);
    }

    function _store(
        uint256 id,
        uint256 batchId,
        address wallet,
        bytes32 fingerprint,
        uint64 expiresAt,
        string calldata metadataURI,
        string calldata encryptedPayloadURI
    ) private {
        _storeSlots(id, batchId, wallet, fingerprint, expiresAt);
        _fingerprintOf[id] = fingerprint;
        if (bytes(metadataURI).length != 0 || bytes(encryptedPayloadURI).length != 0) {
            _uris[id] = abi.encodePacked(uint32(bytes(metadataURI).length), metadataURI, encryptedPayloadURI);
        }
    }

    /// Writes the packed slots as whole words (members lowest-order first, as solc lays them out): a
    /// member-wise struct assignment reads and rewrites the slot once per member. Callers revert when
    /// an id exceeds uint32.
    function _storeSlots(uint256 id, uint256 batchId, address wallet, bytes32 fingerprint, uint64 expiresAt) private {
        Record storage record = _records[id];
        FingerprintEntry storage entry = _byFingerprint[fingerprint];
        StudentIndex storage student = _students[wallet];
        uint256 previous;
        assembly ("memory-safe") {
            previous := sload(student.slot)
        }
        uint256 recordWord = uint256(uint160(wallet)) | (uint256(expiresAt) << 160) | (batchId << 224);
        uint256 entryWord = id | (uint256(uint32(previous)) << 32) | (uint256(uint64(block.timestamp)) << 64);
        uint256 studentWord = id | ((uint256(uint32(previous >> 32)) + 1) << 32);
        assembly ("memory-safe") {
            sstore(record.slot, recordWord)
            sstore(entry.slot, entryWord)
            sstore(student.slot, studentWord)
        }
    }

    function issueCredential(IssueCredentialRequest calldata request) external returns (uint256 newCredentialId) {
        address institution = request.institution;
        _checkIssuer(institution);
        if (request.studentWallet == address(0)) revert InvalidStudentWallet();
        bytes32 fingerprint = request.fingerprint;
        if (fingerprint == bytes32(0)) revert InvalidFingerprint();
        if (_byFingerprint[fingerprint].id != 0) revert FingerprintAlreadyUsed(fingerprint);

        newCredentialId = uint256(_credentialCount) + 1;
        if (newCredentialId > type(uint32).max) revert(); // ids are stored as uint32
        uint256 batchId = _plainBatch(institution, newCredentialId);
        _store(
            newCredentialId,
            batchId,
            request.studentWallet,
            fingerprint,
            request.expiresAt,
            request.metadataURI,
            request.encryptedPayloadURI
        );
        _credentialCount = uint32(newCredentialId);
        emit CredentialIssued(
            newCredentialId,
            request.studentWallet,
            institution,
            fingerprint,
            request.metadataURI,
            request.encryptedPayloadURI,
            request.expiresAt
        );
    }

    function _full(string calldata baseURI, string calldata uri) private pure returns (string memory) {
        if (bytes(uri).length == 0) return "";
        return string.concat(baseURI, uri);
    }

    function _emitBatchIssued(uint256 id, address institution, string calldata baseURI, BatchCredential calldata item)
        private
    {
        uint256 freeMem;
        assembly ("memory-safe") {
            freeMem := mload(0x40)
        }
        emit CredentialIssued(
            id,
            item.studentWallet,
            institution,
            item.fingerprint,
            _full(baseURI, item.metadataURI),
            _full(baseURI, item.encryptedPayloadURI),
            item.expiresAt
        );
        assembly ("memory-safe") {
            mstore(0x40, freeMem) // the event's strings are garbage now: reuse their memory
        }
    }

    /// @inheritdoc IBlockProofBatch
    function issueCredentialBatch(address institution, string calldata baseURI, BatchCredential[] calldata items)
        external
        returns (uint256[] memory ids)
    {
        _checkIssuer(institution);
        uint256 n = items.length;
        ids = new uint256[](n);
        uint256 count = _credentialCount;
        uint256 batchId;
        for (uint256 i; i < n; ++i) {
            BatchCredential calldata item = items[i];
            if (item.studentWallet == address(0)) revert InvalidStudentWallet();
            bytes32 fingerprint = item.fingerprint;
            if (fingerprint == bytes32(0)) revert InvalidFingerprint();
            if (_byFingerprint[fingerprint].id != 0) continue; // already issued: skipped, id 0

            uint256 id = ++count;
            if (batchId == 0) {
                if (bytes(baseURI).length == 0) {
                    batchId = _plainBatch(institution, id);
                } else {
                    batchId = id;
                    _batches[id] = BatchRecord(institution, true);
                    _batchBase[id] = baseURI;
                }
            }
            _store(
                id, batchId, item.studentWallet, fingerprint, item.expiresAt, item.metadataURI, item.encryptedPayloadURI
            );
            ids[i] = id;

            _emitBatchIssued(id, institution, baseURI, item);
        }
        if (count > type(uint32).max) revert(); // ids are stored as uint32
        _credentialCount = uint32(count);
    }

    // ------------------------------------------------------------------ revocation
    /// Revokes `id`; returns false (without effects) when it is already revoked.
    function _revoke(uint256 id, bytes32 reasonHash) private returns (bool) {
        Record storage r = _records[id];
        if (r.studentWallet == address(0)) revert CredentialNotFound(id);
        address institution = _batches[r.batchId].institution;
        if (!canIssueForInstitution(institution, msg.sender)) revert UnauthorizedController(institution, msg.sender);
        FingerprintEntry storage e = _byFingerprint[_fingerprintOf[id]];
        if (e.revokedAt != 0) return false;
        uint64 nowTs = uint64(block.timestamp);
        e.revokedAt = nowTs;
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

    // ------------------------------------------------------------------ views
    function credentialCount() external view returns (uint256) {
        return _credentialCount;
    }

    function fingerprintUsed(bytes32 fingerprint) external view returns (bool) {
        return _byFingerprint[fingerprint].id != 0;
    }

    function credentialStatus(uint256 id) public view returns (CredentialStatus memory status) {
        Record memory r = _records[id];
        if (r.studentWallet == address(0)) return status;
        bytes32 fingerprint = _fingerprintOf[id];
        FingerprintEntry memory e = _byFingerprint[fingerprint];
        uint64 revokedAt = e.revokedAt;
        status.exists = true;
        status.revoked = revokedAt != 0;
        status.valid = !status.revoked && !(r.expiresAt != 0 && r.expiresAt < block.timestamp);
        status.fingerprint = fingerprint;
        status.studentWallet = r.studentWallet;
        status.institution = _batches[r.batchId].institution;
        status.issuedAt = e.issuedAt;
        status.expiresAt = r.expiresAt;
        status.revokedAt = revokedAt;
    }

    function verifyFingerprint(uint256 id, bytes32 fingerprint) external view returns (bool) {
        CredentialStatus memory s = credentialStatus(id);
        return s.exists && s.fingerprint == fingerprint && s.valid;
    }

    function getCredential(uint256 id) external view returns (Credential memory c) {
        CredentialStatus memory s = credentialStatus(id);
        if (!s.exists) revert CredentialNotFound(id);
        c.id = id;
        c.studentWallet = s.studentWallet;
        c.institution = s.institution;
        c.fingerprint = s.fingerprint;
        c.issuedAt = s.issuedAt;
        c.expiresAt = s.expiresAt;
        c.revokedAt = s.revokedAt;
        c.revoked = s.revoked;
        c.revocationReasonHash = _revocationReason[id];

        bytes memory packed = _uris[id];
        if (packed.length != 0) {
            uint256 batchId = _records[id].batchId;
            string memory base = _batches[batchId].hasBase ? _batchBase[batchId] : "";
            uint256 metaLen = uint32(bytes4(_slice(packed, 0, 4)));
            bytes memory meta = _slice(packed, 4, metaLen);
            bytes memory payload = _slice(packed, 4 + metaLen, packed.length - 4 - metaLen);
            c.metadataURI = meta.length == 0 ? "" : string.concat(base, string(meta));
            c.encryptedPayloadURI = payload.length == 0 ? "" : string.concat(base, string(payload));
        }
    }

    function _slice(bytes memory data, uint256 start, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i; i < len; ++i) {
            out[i] = data[start + i];
        }
    }

    function getInstitution(address institution) external view returns (Institution memory) {
        InstitutionState storage s = _institutions[institution];
        return Institution(s.name, s.exists, s.isActive, s.createdAt, s.lastUpdatedAt);
    }

    function studentCredentialIds(address studentWallet) external view returns (uint256[] memory ids) {
        StudentIndex memory s = _students[studentWallet];
        ids = new uint256[](s.count);
        uint256 id = s.lastId;
        for (uint256 i = s.count; i > 0; --i) {
            ids[i - 1] = id;
            id = _byFingerprint[_fingerprintOf[id]].prevIdOfStudent;
        }
    }

    // ------------------------------------------------------------------ ERC-165
    function supportsInterface(bytes4 interfaceId) external view returns (bool) {
        return interfaceId == _ERC165_ID || interfaceId == type(IBlockProofBatch).interfaceId;
    }
}
