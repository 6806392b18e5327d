"""Client protocols: each module parses its protocol into core types and renders them back."""
