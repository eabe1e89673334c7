SELECT (a).row_to_json FROM accounts a
