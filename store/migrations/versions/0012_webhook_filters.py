"""Webhook filters: which events of its types a webhook receives (``store.event_filters``).

A nullable JSON column: the webhooks that exist have no filter (NULL) and keep receiving every event
of their types.

Revision ID: 0012_webhook_filters
Revises: 0011_api_key_roles
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012_webhook_filters'
down_revision = '0011_api_key_roles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('filter', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('filter')
