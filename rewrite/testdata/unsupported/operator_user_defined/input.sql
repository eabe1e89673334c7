SELECT 'a' <?> 'b'
