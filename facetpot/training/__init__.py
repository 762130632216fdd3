"""Training beside the model: config -> data cache -> statistics -> trainer loop -> checkpoints, logs."""
