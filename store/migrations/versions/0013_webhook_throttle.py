"""Webhook throttling: a webhook's ``throttle``, its cooldowns, and suppressed deliveries (``store.throttles``).

A nullable JSON column on webhooks (NULL: not throttled, as every existing webhook); the cooldown table,
one row per (webhook, event type, group key), which dispatchers claim with INSERT ... ON CONFLICT; and
the delivery a suppressed delivery repeats.

Revision ID: 0013_webhook_throttle
Revises: 0012_webhook_filters
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision = '0013_webhook_throttle'
down_revision = '0012_webhook_filters'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('throttle', JSON_TYPE, nullable=True)
        )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('repeats', sa.String(length=40), nullable=True))
    op.create_table('webhook_cooldowns',
    sa.Column('webhook_id', sa.String(length=40), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('group_key', sa.String(length=64), nullable=False),
    sa.Column('group', JSON_TYPE, nullable=False),
    sa.Column('delivery_id', sa.String(length=40), nullable=False),
    sa.Column('until', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_at', store.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ['webhook_id'], ['webhooks.id'], name=op.f('fk_webhook_cooldowns_webhook_id_webhooks'), ondelete='CASCADE'
    ),
    sa.PrimaryKeyConstraint('webhook_id', 'event_type', 'group_key', name=op.f('pk_webhook_cooldowns'))
    )


def downgrade() -> None:
    op.drop_table('webhook_cooldowns')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_column('repeats')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('throttle')
