module example.com/reproducible

go 1.26
