package tufrepo
