SELECT age('3'::xid)
