"""Alerting: webhook formats and their options, threshold severity, episode-opening event ids.

Revision ID: 0008_alerting
Revises: 0007_api_key_lifecycle
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

revision = '0008_alerting'
down_revision = '0007_api_key_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('format', sa.String(length=16), server_default='standard', nullable=False))
        batch_op.add_column(sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='{}', nullable=False))

    with op.batch_alter_table('thresholds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('severity', sa.String(length=16), server_default='error', nullable=False))

    with op.batch_alter_table('threshold_states', schema=None) as batch_op:
        batch_op.add_column(sa.Column('episode_event_id', sa.String(length=40), nullable=True))

    with op.batch_alter_table('monitors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drift_episode_event_id', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('monitors', schema=None) as batch_op:
        batch_op.drop_column('drift_episode_event_id')

    with op.batch_alter_table('threshold_states', schema=None) as batch_op:
        batch_op.drop_column('episode_event_id')

    with op.batch_alter_table('thresholds', schema=None) as batch_op:
        batch_op.drop_column('severity')

    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('config')
        batch_op.drop_column('format')
