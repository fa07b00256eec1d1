"""Files in, a Plan out: reading spreadsheets, checking every cell and row, planning trees."""
