"""Models shipped inside the package, one folder each."""
