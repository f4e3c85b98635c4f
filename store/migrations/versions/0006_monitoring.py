"""Monitoring: drift checks, monitors, thresholds with their episode state, recommendations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:19:27.535479
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('drift_checks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('model_version', sa.String(length=100), nullable=True),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('features', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reference_from', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reference_to', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('current_from', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('current_to', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('monitor_id', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_detail', sa.String(length=2000), nullable=True),
    sa.Column('drifted', sa.Boolean(), nullable=True),
    sa.Column('reference_count', sa.Integer(), nullable=True),
    sa.Column('current_count', sa.Integer(), nullable=True),
    sa.Column('flow_run_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_drift_checks_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_checks'))
    )
    with op.batch_alter_table('drift_checks', schema=None) as batch_op:
        batch_op.create_index('ix_drift_checks_org_model_created', ['organization_id', 'model', 'created_at'], unique=False)

    op.create_table('monitors',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('model_version', sa.String(length=100), nullable=True),
    sa.Column('reference_from', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reference_to', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_seconds', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('features', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('schedule', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('next_run_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_run_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_check_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_monitors_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitors')),
    sa.UniqueConstraint('organization_id', 'model', name=op.f('uq_monitors_organization_id_model'))
    )
    with op.batch_alter_table('monitors', schema=None) as batch_op:
        batch_op.create_index('ix_monitors_next_run_at', ['next_run_at'], unique=False)

    op.create_table('recommendations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('open_slot', sa.Integer(), nullable=True),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dismissed_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_recommendations_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendations')),
    sa.UniqueConstraint('organization_id', 'model', 'kind', 'open_slot', name=op.f('uq_recommendations_organization_id_model_kind_open_slot'))
    )
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.create_index('ix_recommendations_organization_id_id', ['organization_id', 'id'], unique=False)

    op.create_table('thresholds',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('operator', sa.String(length=2), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.Column('window_seconds', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_thresholds_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_thresholds'))
    )
    with op.batch_alter_table('thresholds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_thresholds_organization_id'), ['organization_id'], unique=False)

    op.create_table('threshold_states',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('threshold_id', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('breached', sa.Boolean(), nullable=False),
    sa.Column('episode_started_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consecutive_breaches', sa.Integer(), nullable=False),
    sa.Column('last_value', sa.Double(), nullable=True),
    sa.Column('last_evaluated_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['threshold_id'], ['thresholds.id'], name=op.f('fk_threshold_states_threshold_id_thresholds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_threshold_states')),
    sa.UniqueConstraint('threshold_id', 'model', name=op.f('uq_threshold_states_threshold_id_model'))
    )


def downgrade() -> None:
    op.drop_table('threshold_states')
    with op.batch_alter_table('thresholds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_thresholds_organization_id'))

    op.drop_table('thresholds')
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_index('ix_recommendations_organization_id_id')

    op.drop_table('recommendations')
    with op.batch_alter_table('monitors', schema=None) as batch_op:
        batch_op.drop_index('ix_monitors_next_run_at')

    op.drop_table('monitors')
    with op.batch_alter_table('drift_checks', schema=None) as batch_op:
        batch_op.drop_index('ix_drift_checks_org_model_created')

    op.drop_table('drift_checks')
