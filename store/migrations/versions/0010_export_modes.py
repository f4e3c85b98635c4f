"""Export modes: Elasticsearch exports stored before ``config.mode`` existed say ``index`` explicitly.

New Elasticsearch exports default to data streams; the ones that already ship to plain indices keep
doing so, and now show it in their config (the sink already read a missing mode as ``index``).

Revision ID: 0010_export_modes
Revises: 0009_registry_push
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010_export_modes'
down_revision = '0009_registry_push'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
exports = sa.table('exports', sa.column('id', sa.String), sa.column('type', sa.String), sa.column('config', JSON))


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(exports.c.id, exports.c.config).where(exports.c.type == 'elasticsearch'))
    for export_id, config in rows.all():
        if 'mode' not in (config or {}):
            connection.execute(
                exports.update().where(exports.c.id == export_id).values(config={**(config or {}), 'mode': 'index'})
            )


def downgrade() -> None:
    pass  # a stored "index" means what a missing mode meant
