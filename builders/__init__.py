"""Release builders: sources (the authors' layout, synthetic takes) in, releases out (Hub push)."""
