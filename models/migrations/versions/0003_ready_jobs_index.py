"""index for the signer's pick of the next ready jobs

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # next_ready_jobs: WHERE state = 'ready' [AND batch_id = ?] ORDER BY id, with tens of thousands waiting
    op.create_index("ix_jobs_state_batch_id", "jobs", ["state", "batch_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_batch_id", table_name="jobs")
