// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title L1FeeOracleStub
/// @notice For tests only: the one call of an OP-stack GasPriceOracle predeploy that the signer makes,
/// put at 0x420000000000000000000000000000000000000F on Anvil with anvil_setCode. The fee is a fixed
/// price per byte of the transaction (10 gwei), so a test can compute what it must be.
contract L1FeeOracleStub {
    uint256 public constant WEI_PER_BYTE = 10_000_000_000;

    function getL1Fee(bytes calldata _data) external pure returns (uint256) {
        return _data.length * WEI_PER_BYTE;
    }
}
