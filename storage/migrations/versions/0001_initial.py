"""initial schema: twins, people, identities, l0 items

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 21:11:28.183582
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('twins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handle', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('twins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_twins_handle'), ['handle'], unique=True)

    op.create_table('people',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('twin_id', sa.Integer(), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('is_owner', sa.Boolean(), nullable=False),
    sa.Column('trust', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_people_twin_id'), ['twin_id'], unique=False)

    op.create_table('identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('twin_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], ),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('twin_id', 'platform', 'external_id', name='uq_identity_external')
    )
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identities_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_identities_twin_id'), ['twin_id'], unique=False)

    op.create_table('l0_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('twin_id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('source_id', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('chat', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('chat_title', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('sender_id', sa.Integer(), nullable=True),
    sa.Column('sender_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['sender_id'], ['people.id'], ),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('twin_id', 'source', 'source_id', name='uq_l0_source')
    )
    with op.batch_alter_table('l0_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_l0_items_sender_id'), ['sender_id'], unique=False)
        batch_op.create_index('ix_l0_twin_chat_time', ['twin_id', 'chat', 'occurred_at'], unique=False)
        batch_op.create_index('ix_l0_twin_time', ['twin_id', 'occurred_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('l0_items', schema=None) as batch_op:
        batch_op.drop_index('ix_l0_twin_time')
        batch_op.drop_index('ix_l0_twin_chat_time')
        batch_op.drop_index(batch_op.f('ix_l0_items_sender_id'))

    op.drop_table('l0_items')
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identities_twin_id'))
        batch_op.drop_index(batch_op.f('ix_identities_person_id'))

    op.drop_table('identities')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_twin_id'))

    op.drop_table('people')
    with op.batch_alter_table('twins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_twins_handle'))

    op.drop_table('twins')
