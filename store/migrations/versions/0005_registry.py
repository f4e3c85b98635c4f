"""Registries: monitored model versions, endpoint status history, sync state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa
import store.models.base
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('endpoint_status_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('integration_id', sa.String(length=40), nullable=False),
    sa.Column('endpoint_id', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.Column('deployments', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('observed_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_endpoint_status_changes_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_endpoint_status_changes'))
    )
    with op.batch_alter_table('endpoint_status_changes', schema=None) as batch_op:
        batch_op.create_index('ix_endpoint_status_changes_integration_endpoint', ['integration_id', 'endpoint_id', 'id'], unique=False)

    op.create_table('monitored_models',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.String(length=40), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('version', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=1000), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('registered_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_monitored_models_integration_id_integrations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_monitored_models_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitored_models')),
    sa.UniqueConstraint('integration_id', 'name', 'version', name=op.f('uq_monitored_models_integration_id_name_version'))
    )
    with op.batch_alter_table('monitored_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitored_models_flow_run_id'), ['flow_run_id'], unique=False)
        batch_op.create_index('ix_monitored_models_integration_id_name', ['integration_id', 'name'], unique=False)

    op.create_table('registry_sync_states',
    sa.Column('integration_id', sa.String(length=40), nullable=False),
    sa.Column('last_started_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=True),
    sa.Column('last_error', sa.String(length=2000), nullable=True),
    sa.Column('versions_recorded', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_registry_sync_states_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('integration_id', name=op.f('pk_registry_sync_states'))
    )


def downgrade() -> None:
    op.drop_table('registry_sync_states')
    with op.batch_alter_table('monitored_models', schema=None) as batch_op:
        batch_op.drop_index('ix_monitored_models_integration_id_name')
        batch_op.drop_index(batch_op.f('ix_monitored_models_flow_run_id'))

    op.drop_table('monitored_models')
    with op.batch_alter_table('endpoint_status_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_endpoint_status_changes_integration_endpoint')

    op.drop_table('endpoint_status_changes')
