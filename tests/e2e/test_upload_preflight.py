"""The upload's pre-flight names the real cause of a refusal, whatever order the contract checks its rules in."""
from __future__ import annotations

import pytest
from eth_account import Account

from tests.harness import write_csv
from tests.e2e.test_upload import do_plan

DEV_INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


# the interface-only contract (Basic) checks canIssueForInstitution before the institution's existence
@pytest.mark.parametrize("artifact", ["BlockProofCredentialVaultBasic", "BlockProofCredentialVault"])
def test_an_unregistered_institution_is_reported_as_not_registered_whatever_the_contract_checks_first(
        make_pipeline, sqlite_url, tmp_path, artifact):
    p = make_pipeline(sqlite_url, block_time=None, artifact_name=artifact)
    stranger = Account.create().address
    path = write_csv(tmp_path / "list.csv", 5, seed=31)
    path.write_text(path.read_text(encoding="utf-8").replace(DEV_INSTITUTION, stranger), encoding="utf-8")

    report, staged = do_plan(p, path)
    staged.close()

    assert report.problems == [{"institution": stranger, "signer": p.env.signer_address, "code": "InstitutionNotFound",
                                "message": f"Institution {stranger} is not registered on this contract."}]
