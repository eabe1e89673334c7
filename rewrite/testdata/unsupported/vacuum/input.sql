VACUUM accounts
