"""platform state: the autoreply switch and platform connections (Telegram Business), per twin

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'platform_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('twin_id', sa.Integer(), nullable=False),
        sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('value', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('twin_id', 'platform', 'key', name='uq_platform_state_key'),
    )
    with op.batch_alter_table('platform_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_state_twin_id'), ['twin_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('platform_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_state_twin_id'))
    op.drop_table('platform_state')
