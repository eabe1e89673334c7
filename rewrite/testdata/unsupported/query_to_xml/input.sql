SELECT query_to_xml('select * from accounts', true, true, '')
