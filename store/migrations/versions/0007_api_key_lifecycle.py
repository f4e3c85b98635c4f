"""API key lifecycle: creator, expiry, revoker, last use; per-key request counts for the rate limit.

Revision ID: 0007_api_key_lifecycle
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

import store.models.base

revision = '0007_api_key_lifecycle'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('expires_at', store.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', store.models.base.UTCDateTime(timezone=True), nullable=True))

    op.create_table('api_key_request_counts',
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'window_start', name=op.f('pk_api_key_request_counts'))
    )


def downgrade() -> None:
    op.drop_table('api_key_request_counts')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('revoked_by')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('created_by')
