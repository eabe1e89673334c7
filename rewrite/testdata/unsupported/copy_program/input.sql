COPY countries FROM PROGRAM 'id'
