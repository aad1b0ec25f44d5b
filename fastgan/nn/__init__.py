"""Model pieces: layer specs, flat parameters, layers, MLP, losses."""
