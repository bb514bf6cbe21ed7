"""The pipeline every message flows through, and the protocols its parts implement."""
