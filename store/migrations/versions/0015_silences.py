"""Silences: an organization's silences, its silence set version, and the silence a delivery was silenced by.

A new table (``silences``); ``organizations.silence_set_version`` (NULL for every existing organization:
none has a silence), a new token for each silence created or expired; ``webhook_deliveries.silence_id`` (NULL for
every existing delivery: none was silenced).

Revision ID: 0015_silences
Revises: 0014_remediations
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision = '0015_silences'
down_revision = '0014_remediations'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('silences',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('matchers', JSON_TYPE, nullable=False),
    sa.Column('starts_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.String(length=1000), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ['organization_id'], ['organizations.id'], name=op.f('fk_silences_organization_id_organizations'),
        ondelete='CASCADE'
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    op.create_index('ix_silences_organization_id_ends_at', 'silences', ['organization_id', 'ends_at'], unique=False)
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('silence_set_version', sa.String(length=40), nullable=True))
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('silence_id', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_column('silence_id')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('silence_set_version')
    op.drop_index('ix_silences_organization_id_ends_at', table_name='silences')
    op.drop_table('silences')
