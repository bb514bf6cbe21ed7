"""training: SFT samples with provenance, the adapter registry and what each adapter was trained on

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'training_samples',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('audience', sa.String(length=16), nullable=False),
        sa.Column('visibility', sa.String(length=16), nullable=False),
        sa.Column('prompt', sa.JSON(), nullable=False),
        sa.Column('completion', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_training_samples_twin_audience', 'training_samples', ['twin_id', 'audience', 'kind'])
    op.create_table(
        'training_sample_sources',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
        sa.Column('sample_id', sa.Integer(), sa.ForeignKey('training_samples.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('l0_item_id', sa.Integer(), sa.ForeignKey('l0_items.id', ondelete='CASCADE'), nullable=True),
        sa.Column('fact_id', sa.Integer(), sa.ForeignKey('facts.id', ondelete='CASCADE'), nullable=True),
    )
    for column in ('twin_id', 'sample_id', 'l0_item_id', 'fact_id'):
        op.create_index(f'ix_training_sample_sources_{column}', 'training_sample_sources', [column])
    op.create_table(
        'adapters',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('audience', sa.String(length=16), nullable=False),
        sa.Column('path', sa.String(length=1024), nullable=False),
        sa.Column('base_model', sa.String(length=512), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('withdrawn_reason', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('twin_id', 'name', name='uq_adapter_name'),
    )
    op.create_index('ix_adapters_twin_audience_status', 'adapters', ['twin_id', 'audience', 'status'])
    op.create_table(
        'adapter_sources',
        sa.Column('adapter_id', sa.Integer(), sa.ForeignKey('adapters.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('l0_item_id', sa.Integer(), primary_key=True),
        sa.Column('twin_id', sa.Integer(), sa.ForeignKey('twins.id'), nullable=False),
    )
    op.create_index('ix_adapter_sources_l0_item_id', 'adapter_sources', ['l0_item_id'])
    op.create_index('ix_adapter_sources_twin_id', 'adapter_sources', ['twin_id'])


def downgrade() -> None:
    op.drop_table('adapter_sources')
    op.drop_table('adapters')
    op.drop_table('training_sample_sources')
    op.drop_table('training_samples')
