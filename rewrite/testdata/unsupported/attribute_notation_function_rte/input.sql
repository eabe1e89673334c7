SELECT g.leak FROM generate_series(1, 3) g
