// probe guest (being written)
