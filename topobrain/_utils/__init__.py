"""Private helpers shared across topobrain's modules."""
