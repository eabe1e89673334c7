SELECT evil(1)
