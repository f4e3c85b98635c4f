"""API key roles: admin (every operation), publisher (events and inference logs), viewer (reads).

Every key that exists already keeps doing what it did: it becomes an ``admin``.

Revision ID: 0011_api_key_roles
Revises: 0010_export_modes
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = '0011_api_key_roles'
down_revision = '0010_export_modes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=16), server_default=sa.text("'admin'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('role')
