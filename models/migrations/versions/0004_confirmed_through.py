"""consumer watermark: events at or below it have confirmed their jobs

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consumer_checkpoint") as batch:
        batch.add_column(sa.Column("confirmed_through", sa.BigInteger(), nullable=False, server_default="-1"))


def downgrade() -> None:
    with op.batch_alter_table("consumer_checkpoint") as batch:
        batch.drop_column("confirmed_through")
