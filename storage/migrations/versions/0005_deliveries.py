"""deliveries: each live message from received to answered to delivered

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'deliveries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
        sa.Column('platform', sa.String(length=32), nullable=False),
        sa.Column('message_id', sa.String(length=512), nullable=False),
        sa.Column('chat_id', sa.String(length=255), nullable=False),
        sa.Column('sender_id', sa.String(length=255), nullable=False),
        sa.Column('sender_name', sa.String(length=200), nullable=False),
        sa.Column('to_owner', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('twin_id', 'platform', 'message_id', name='uq_delivery_message'),
    )
    op.create_index('ix_deliveries_twin_id', 'deliveries', ['twin_id'])


def downgrade() -> None:
    op.drop_index('ix_deliveries_twin_id', table_name='deliveries')
    op.drop_table('deliveries')
