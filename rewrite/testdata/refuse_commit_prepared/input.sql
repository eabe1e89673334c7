COMMIT PREPARED 'alice_change'
