"""forgetting: tombstones (salted hashes) and a salt per twin

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'twin_salts',
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), primary_key=True),
        sa.Column('salt', sa.String(length=64), nullable=False),
    )
    op.create_table(
        'tombstones',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('twin_id', 'digest', name='uq_tombstone_digest'),
    )
    op.create_index('ix_tombstones_twin_id', 'tombstones', ['twin_id'])


def downgrade() -> None:
    op.drop_index('ix_tombstones_twin_id', table_name='tombstones')
    op.drop_table('tombstones')
    op.drop_table('twin_salts')
