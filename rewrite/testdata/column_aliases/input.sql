SELECT x, y FROM accounts AS a(x, y)
