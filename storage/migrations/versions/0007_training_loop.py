"""training loop: each sample's task and metadata (DPO's rejected answer, a probe's key), and the L1 facts each
adapter was trained on (forgetting a fact withdraws the adapters that learned it)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('training_samples') as batch:
        batch.add_column(sa.Column('task', sa.String(length=24), nullable=False, server_default='reply'))
        batch.add_column(sa.Column('meta', sa.JSON(), nullable=True))
    op.create_table(
        'adapter_fact_sources',
        sa.Column('adapter_id', sa.Integer(), sa.ForeignKey('adapters.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('fact_id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
    )
    op.create_index('ix_adapter_fact_sources_fact_id', 'adapter_fact_sources', ['fact_id'])
    op.create_index('ix_adapter_fact_sources_twin_id', 'adapter_fact_sources', ['twin_id'])


def downgrade() -> None:
    op.drop_table('adapter_fact_sources')
    with op.batch_alter_table('training_samples') as batch:
        batch.drop_column('meta')
        batch.drop_column('task')
