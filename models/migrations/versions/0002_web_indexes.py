"""indexes for the web UI: keyset pagination of a batch's jobs (all, or one state) and recent transitions

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a batch's jobs in id order, optionally of one state: the batch page's keyset pagination at 100,000 jobs
    op.create_index("ix_jobs_batch_id_id", "jobs", ["batch_id", "id"], unique=False)
    op.create_index("ix_jobs_batch_state_id", "jobs", ["batch_id", "state", "id"], unique=False)
    # throughput and time-to-confirm: transitions into a state in the last minutes
    op.create_index("ix_job_transitions_to_state_at", "job_transitions", ["to_state", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_transitions_to_state_at", table_name="job_transitions")
    op.drop_index("ix_jobs_batch_state_id", table_name="jobs")
    op.drop_index("ix_jobs_batch_id_id", table_name="jobs")
