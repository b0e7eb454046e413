module example.com/timestamped

go 1.26
