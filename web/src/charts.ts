// Chart.js, registered once with only the pieces the app draws (radar and line charts).

import {
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  RadarController,
  RadialLinearScale,
  Tooltip,
} from 'chart.js';

Chart.register(
  CategoryScale,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  RadarController,
  RadialLinearScale,
  Tooltip,
);
Chart.defaults.color = '#cfc9e6';
Chart.defaults.borderColor = 'rgba(207, 201, 230, 0.15)';
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

export { Chart };
export const PALETTE = ['#ff7a59', '#5ad1c5', '#f5c451', '#a98bff', '#6fa8ff', '#ff6fa8'];
