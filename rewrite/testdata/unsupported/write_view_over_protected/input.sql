UPDATE account_summary SET total = 0
