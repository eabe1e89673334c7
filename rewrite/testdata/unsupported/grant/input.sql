GRANT SELECT ON accounts TO public
