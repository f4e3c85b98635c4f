"""Remediations (a Prefect automation per row) and the events' ``published_at`` (emitted to Prefect).

Events already in the outbox are marked published at their own timestamp: they happened before the
publisher existed, and emitting the whole history would fire no remediation (none existed) but flood
Prefect's event feed.

Revision ID: 0014_remediations
Revises: 0013_webhook_throttle
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision = '0014_remediations'
down_revision = '0013_webhook_throttle'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('remediations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('on', JSON_TYPE, nullable=False),
    sa.Column('deployment', sa.String(length=400), nullable=False),
    sa.Column('parameters', JSON_TYPE, nullable=False),
    sa.Column('automation_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ['organization_id'], ['organizations.id'], name=op.f('fk_remediations_organization_id_organizations'),
        ondelete='CASCADE'
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remediations')),
    sa.UniqueConstraint('organization_id', 'name', name=op.f('uq_remediations_organization_id_name'))
    )
    with op.batch_alter_table('remediations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remediations_organization_id'), ['organization_id'], unique=False)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', store.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_published_at'), ['published_at'], unique=False)
    op.execute('UPDATE events SET published_at = "timestamp"')


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_published_at'))
        batch_op.drop_column('published_at')
    with op.batch_alter_table('remediations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_remediations_organization_id'))
    op.drop_table('remediations')
