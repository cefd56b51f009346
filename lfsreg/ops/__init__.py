"""Operations across transports: push into and pull out of a registry."""
