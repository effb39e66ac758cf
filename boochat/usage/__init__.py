"""Who used which model, through which key, and what it cost."""
