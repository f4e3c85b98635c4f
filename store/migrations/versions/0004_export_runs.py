"""Export progress: watermarks, export runs with per-stream counters, rejected records.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 07:19:36.915813
"""

from alembic import op
import sqlalchemy as sa
import store.models.base
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keyset pages of the exported streams (see store/models/export_runs.py).
    with op.batch_alter_table('inference_logs', schema=None) as batch_op:
        batch_op.create_index('ix_inference_logs_organization_id_id', ['organization_id', 'id'], unique=False)
    with op.batch_alter_table('drift_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_drift_metrics_organization_id_id', ['organization_id', 'id'], unique=False)

    op.create_table('export_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('export_id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('flow_run_id', sa.String(length=36), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('backfill', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('error', sa.String(length=4000), nullable=True),
    sa.Column('created_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', store.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_export_runs_export_id_exports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_runs'))
    )
    with op.batch_alter_table('export_runs', schema=None) as batch_op:
        batch_op.create_index('ix_export_runs_export_id_id', ['export_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_runs_flow_run_id'), ['flow_run_id'], unique=False)

    op.create_table('export_watermarks',
    sa.Column('export_id', sa.String(length=40), nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('position', sa.String(length=64), nullable=False),
    sa.Column('updated_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_export_watermarks_export_id_exports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('export_id', 'stream', name=op.f('pk_export_watermarks'))
    )
    op.create_table('export_rejected_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('rejected_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['export_runs.id'], name=op.f('fk_export_rejected_records_run_id_export_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_rejected_records'))
    )
    with op.batch_alter_table('export_rejected_records', schema=None) as batch_op:
        batch_op.create_index('ix_export_rejected_records_run_id_id', ['run_id', 'id'], unique=False)

    op.create_table('export_run_streams',
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('shipped', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('retried', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['export_runs.id'], name=op.f('fk_export_run_streams_run_id_export_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'stream', name=op.f('pk_export_run_streams'))
    )


def downgrade() -> None:
    op.drop_table('export_run_streams')
    with op.batch_alter_table('export_rejected_records', schema=None) as batch_op:
        batch_op.drop_index('ix_export_rejected_records_run_id_id')

    op.drop_table('export_rejected_records')
    op.drop_table('export_watermarks')
    with op.batch_alter_table('export_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_runs_flow_run_id'))
        batch_op.drop_index('ix_export_runs_export_id_id')

    op.drop_table('export_runs')
    with op.batch_alter_table('drift_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_drift_metrics_organization_id_id')
    with op.batch_alter_table('inference_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_inference_logs_organization_id_id')
