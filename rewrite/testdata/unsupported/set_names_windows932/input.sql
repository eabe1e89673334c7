SET NAMES 'Windows-932'
