"""Registry push: inbound receipts (replay and duplicate guard), push state, version aliases and tags.

Revision ID: 0009_registry_push
Revises: 0008_alerting
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision = '0009_registry_push'
down_revision = '0008_alerting'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('inbound_receipts',
    sa.Column('integration_id', sa.String(length=40), nullable=False),
    sa.Column('receipt_id', sa.String(length=200), nullable=False),
    sa.Column('received_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_inbound_receipts_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('integration_id', 'receipt_id', name=op.f('pk_inbound_receipts'))
    )
    with op.batch_alter_table('inbound_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_receipts_received_at', ['received_at'], unique=False)

    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('push_state', JSON, nullable=True))

    # Versions recorded before this revision get empty aliases and tags; the next sync fills them in.
    with op.batch_alter_table('monitored_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('aliases', JSON, nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column('tags', JSON, nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('labels_updated_at', store.models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('monitored_models', schema=None) as batch_op:
        batch_op.drop_column('labels_updated_at')
        batch_op.drop_column('tags')
        batch_op.drop_column('aliases')

    with op.batch_alter_table('integrations', schema=None) as batch_op:
        batch_op.drop_column('push_state')

    with op.batch_alter_table('inbound_receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_receipts_received_at')

    op.drop_table('inbound_receipts')
