"""Running many notebooks: plan a profile's runs (`plan`), execute one notebook with papermill
(`notebooks`), here in a process pool (`local`) or on a Ray cluster (`ray`), the grid (`grid`)."""
