// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BlockProofCredentialVaultBasic
/// @notice A deliberately straightforward implementation of ONLY the interface in docs/contract.md:
///         no batch calls, no ERC-165, the Credential struct stored as-is. It is the
///         "interface-only" compatibility target and the gas baseline.
contract BlockProofCredentialVaultBasic {
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

    address public superAdmin;
    address public pendingSuperAdmin;
    bool public paused;
    uint256 public credentialCount;
    mapping(address => bool) public registrars;
    mapping(bytes32 => bool) public fingerprintUsed;

    mapping(address => Institution) private _institutions;
    mapping(address => mapping(address => bool)) private _controllers;
    mapping(uint256 => Credential) private _credentials;
    mapping(address => uint256[]) private _studentCredentialIds;

    constructor() {
        superAdmin = msg.sender;
        emit SuperAdminUpdated(msg.sender);
    }

    modifier onlySuperAdmin() {
        if (msg.sender != superAdmin) revert NotSuperAdmin();
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert ContractPaused();
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
        Institution storage inst = _institutions[institution];
        if (!inst.exists) {
            inst.exists = true;
            inst.createdAt = uint64(block.timestamp);
        }
        inst.name = name;
        inst.isActive = isActive;
        inst.lastUpdatedAt = uint64(block.timestamp);
        emit InstitutionUpserted(institution, name, isActive, uint64(block.timestamp));
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

    function issueCredential(IssueCredentialRequest calldata request)
        external
        whenNotPaused
        returns (uint256 newCredentialId)
    {
        if (!canIssueForInstitution(request.institution, msg.sender)) {
            revert UnauthorizedController(request.institution, msg.sender);
        }
        Institution storage inst = _institutions[request.institution];
        if (!inst.exists) revert InstitutionNotFound(request.institution);
        if (!inst.isActive) revert InstitutionInactive(request.institution);
        if (request.studentWallet == address(0)) revert InvalidStudentWallet();
        if (request.fingerprint == bytes32(0)) revert InvalidFingerprint();
        if (fingerprintUsed[request.fingerprint]) revert FingerprintAlreadyUsed(request.fingerprint);

        newCredentialId = ++credentialCount;
        fingerprintUsed[request.fingerprint] = true;
        _credentials[newCredentialId] = Credential({
            id: newCredentialId,
            studentWallet: request.studentWallet,
            institution: request.institution,
            fingerprint: request.fingerprint,
            metadataURI: request.metadataURI,
            encryptedPayloadURI: request.encryptedPayloadURI,
            issuedAt: uint64(block.timestamp),
            expiresAt: request.expiresAt,
            revokedAt: 0,
            revocationReasonHash: bytes32(0),
            revoked: false
        });
        _studentCredentialIds[request.studentWallet].push(newCredentialId);
        emit CredentialIssued(
            newCredentialId,
            request.studentWallet,
            request.institution,
            request.fingerprint,
            request.metadataURI,
            request.encryptedPayloadURI,
            request.expiresAt
        );
    }

    function revokeCredential(uint256 credentialId, bytes32 reasonHash) external whenNotPaused {
        Credential storage c = _credentials[credentialId];
        if (c.id == 0) revert CredentialNotFound(credentialId);
        if (!canIssueForInstitution(c.institution, msg.sender)) revert UnauthorizedController(c.institution, msg.sender);
        if (c.revoked) revert CredentialRevokedAlready(credentialId);
        c.revoked = true;
        c.revokedAt = uint64(block.timestamp);
        c.revocationReasonHash = reasonHash;
        emit CredentialRevoked(credentialId, msg.sender, reasonHash, uint64(block.timestamp));
    }

    function credentialStatus(uint256 id) public view returns (CredentialStatus memory status) {
        Credential storage c = _credentials[id];
        if (c.id == 0) return status;
        status.exists = true;
        status.revoked = c.revoked;
        status.valid = !c.revoked && !(c.expiresAt != 0 && c.expiresAt < block.timestamp);
        status.fingerprint = c.fingerprint;
        status.studentWallet = c.studentWallet;
        status.institution = c.institution;
        status.issuedAt = c.issuedAt;
        status.expiresAt = c.expiresAt;
        status.revokedAt = c.revokedAt;
    }

    function verifyFingerprint(uint256 id, bytes32 fingerprint) external view returns (bool) {
        CredentialStatus memory s = credentialStatus(id);
        return s.exists && s.fingerprint == fingerprint && s.valid;
    }

    function getCredential(uint256 id) external view returns (Credential memory) {
        if (_credentials[id].id == 0) revert CredentialNotFound(id);
        return _credentials[id];
    }

    function getInstitution(address institution) external view returns (Institution memory) {
        return _institutions[institution];
    }

    function studentCredentialIds(address studentWallet) external view returns (uint256[] memory) {
        return _studentCredentialIds[studentWallet];
    }
}
