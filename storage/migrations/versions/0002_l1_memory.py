"""L1 memory: facts with provenance and time of validity, versioned profiles, job cursors

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'facts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('twin_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('visibility', sa.String(length=16), nullable=False),
        sa.Column('visibility_by_owner', sa.Boolean(), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
        sa.Column('superseded_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['superseded_by'], ['facts.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('facts', schema=None) as batch_op:
        batch_op.create_index('ix_facts_twin_valid_to', ['twin_id', 'valid_to'], unique=False)

    op.create_table(
        'fact_sources',
        sa.Column('fact_id', sa.Integer(), nullable=False),
        sa.Column('l0_item_id', sa.Integer(), nullable=False),
        sa.Column('twin_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['fact_id'], ['facts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['l0_item_id'], ['l0_items.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
        sa.PrimaryKeyConstraint('fact_id', 'l0_item_id'),
    )
    with op.batch_alter_table('fact_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fact_sources_l0_item_id'), ['l0_item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fact_sources_twin_id'), ['twin_id'], unique=False)

    op.create_table(
        'profile_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('twin_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('audience', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('global_bio', sa.Text(), nullable=False),
        sa.Column('status_bio', sa.Text(), nullable=False),
        sa.Column('topics', sa.JSON(), nullable=False),
        sa.Column('sources', sa.JSON(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('twin_id', 'version', 'audience', name='uq_profile_version_audience'),
    )
    with op.batch_alter_table('profile_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_profile_versions_twin_id'), ['twin_id'], unique=False)

    op.create_table(
        'memory_cursors',
        sa.Column('twin_id', sa.Integer(), nullable=False),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
        sa.PrimaryKeyConstraint('twin_id', 'name'),
    )


def downgrade() -> None:
    op.drop_table('memory_cursors')
    with op.batch_alter_table('profile_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_profile_versions_twin_id'))
    op.drop_table('profile_versions')
    with op.batch_alter_table('fact_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fact_sources_twin_id'))
        batch_op.drop_index(batch_op.f('ix_fact_sources_l0_item_id'))
    op.drop_table('fact_sources')
    with op.batch_alter_table('facts', schema=None) as batch_op:
        batch_op.drop_index('ix_facts_twin_valid_to')
    op.drop_table('facts')
