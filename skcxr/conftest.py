import matplotlib

# doctests in the package draw figures without a screen
matplotlib.use("Agg")
