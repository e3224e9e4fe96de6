"""Toy stand-ins for the three datasets: procedural street scenes, their rendering and writers."""
