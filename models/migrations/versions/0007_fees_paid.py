"""fees: what each transaction paid (L2 execution + L1 data fee), the batch whose jobs it carries

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WEI = sa.Numeric(40, 0)


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("l1_fee_wei", WEI, nullable=True))
        batch.add_column(sa.Column("fee_paid_wei", WEI, nullable=True))
        batch.create_index("ix_transactions_batch_id", ["batch_id"])
    # a transaction carries the jobs of one batch; jobs still linked to it name that batch
    op.execute("UPDATE transactions SET batch_id = (SELECT MIN(jobs.batch_id) FROM jobs "
               "WHERE jobs.transaction_id = transactions.id)")


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_index("ix_transactions_batch_id")
        batch.drop_column("fee_paid_wei")
        batch.drop_column("l1_fee_wei")
        batch.drop_column("batch_id")
